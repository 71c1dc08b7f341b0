//! Which articles one run of a sharded job takes: `--shard K/N` keeps the articles whose id
//! hashes to K modulo N, the same way on every machine, so N runs over the same inputs
//! cover every article exactly once. `--shard auto` reads the scheduler's variables.

use sha2::{Digest, Sha256};

/// Shard `index` of `count` (0-based).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: u64,
    pub count: u64,
}

impl Shard {
    /// `K/N`, with 0 ≤ K < N.
    pub fn parse(text: &str) -> Result<Shard, String> {
        let (k, n) = text
            .trim()
            .split_once('/')
            .ok_or_else(|| format!("{text:?} is not K/N (e.g. 0/3)"))?;
        let index: u64 = k.trim().parse().map_err(|e| format!("{text:?}: K: {e}"))?;
        let count: u64 = n.trim().parse().map_err(|e| format!("{text:?}: N: {e}"))?;
        if count == 0 || index >= count {
            return Err(format!("{text:?}: K must be below N, and N at least 1"));
        }
        Ok(Shard { index, count })
    }

    /// The shard the environment names, looked for in order: `CROSSBRIEF_SHARD=K/N`;
    /// a Slurm job array (`SLURM_ARRAY_TASK_ID` normalised by `SLURM_ARRAY_TASK_MIN` and
    /// `SLURM_ARRAY_TASK_STEP`, out of `SLURM_ARRAY_TASK_COUNT`); a Kubernetes Indexed Job
    /// (`JOB_COMPLETION_INDEX` out of `CROSSBRIEF_SHARD_COUNT`, which the manifest must set).
    pub fn from_env(var: &dyn Fn(&str) -> Option<String>) -> Result<Shard, String> {
        if let Some(text) = var("CROSSBRIEF_SHARD") {
            return Shard::parse(&text).map_err(|e| format!("CROSSBRIEF_SHARD: {e}"));
        }
        let number = |name: &str| -> Result<Option<u64>, String> {
            var(name)
                .map(|v| {
                    v.trim()
                        .parse::<u64>()
                        .map_err(|e| format!("{name}={v}: {e}"))
                })
                .transpose()
        };
        if let Some(id) = number("SLURM_ARRAY_TASK_ID")? {
            let min = number("SLURM_ARRAY_TASK_MIN")?.unwrap_or(0);
            let step = number("SLURM_ARRAY_TASK_STEP")?.unwrap_or(1).max(1);
            let count = number("SLURM_ARRAY_TASK_COUNT")?
                .ok_or("SLURM_ARRAY_TASK_ID is set but SLURM_ARRAY_TASK_COUNT is not")?;
            if id < min || (id - min) % step != 0 {
                return Err(format!(
                    "SLURM_ARRAY_TASK_ID {id} is not MIN {min} plus a multiple of STEP {step}"
                ));
            }
            return Shard::parse(&format!("{}/{count}", (id - min) / step))
                .map_err(|e| format!("Slurm array: {e}"));
        }
        if let Some(index) = number("JOB_COMPLETION_INDEX")? {
            let count = number("CROSSBRIEF_SHARD_COUNT")?.ok_or(
                "JOB_COMPLETION_INDEX is set but CROSSBRIEF_SHARD_COUNT is not (set it to the Job's completions)",
            )?;
            return Shard::parse(&format!("{index}/{count}"))
                .map_err(|e| format!("Kubernetes Indexed Job: {e}"));
        }
        Err("--shard auto: none of CROSSBRIEF_SHARD, SLURM_ARRAY_TASK_ID or JOB_COMPLETION_INDEX is set".into())
    }

    /// Whether the article `id` is this shard's: the first 8 bytes of sha256(id), modulo N
    /// (a hash fixed by its standard, unlike std's, which may change between releases).
    pub fn takes(&self, id: &str) -> bool {
        let digest = Sha256::digest(id.as_bytes());
        let head = u64::from_be_bytes(digest[..8].try_into().expect("8 bytes"));
        head % self.count == self.index
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn shards_parse_and_refuse_nonsense() {
        assert_eq!(Shard::parse("1/3"), Ok(Shard { index: 1, count: 3 }));
        for bad in ["3/3", "1/0", "x/2", "2", "-1/3"] {
            assert!(Shard::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn every_article_falls_in_exactly_one_shard() {
        let ids: Vec<String> = (0..200).map(|i| format!("article-{i}")).collect();
        let shards: Vec<Shard> = (0..3).map(|k| Shard { index: k, count: 3 }).collect();
        let mut sizes = [0; 3];
        for id in &ids {
            let owners: Vec<u64> = shards
                .iter()
                .filter(|s| s.takes(id))
                .map(|s| s.index)
                .collect();
            assert_eq!(owners.len(), 1, "{id}: {owners:?}");
            sizes[owners[0] as usize] += 1;
        }
        // Spread, not lumped: each of 3 shards gets a fair share of 200 ids.
        assert!(sizes.iter().all(|&n| n > 40), "{sizes:?}");
        // Fixed by sha256: the same answer on every machine and release.
        assert!(Shard { index: 0, count: 1 }.takes("anything"));
        assert_eq!(
            (0..3).find(|&k| Shard { index: k, count: 3 }.takes("000_4dba355c91cb4c7f")),
            Some(
                u64::from_be_bytes(
                    Sha256::digest(b"000_4dba355c91cb4c7f")[..8]
                        .try_into()
                        .unwrap()
                ) % 3
            )
        );
    }

    #[test]
    fn the_scheduler_names_the_shard() {
        let own = Shard::from_env(&env(&[
            ("CROSSBRIEF_SHARD", "2/5"),
            ("SLURM_ARRAY_TASK_ID", "0"),
        ]));
        assert_eq!(own, Ok(Shard { index: 2, count: 5 }));
        // --array=1-7:2 runs tasks 1, 3, 5, 7: task 5 is shard 2 of 4.
        let slurm = env(&[
            ("SLURM_ARRAY_TASK_ID", "5"),
            ("SLURM_ARRAY_TASK_MIN", "1"),
            ("SLURM_ARRAY_TASK_STEP", "2"),
            ("SLURM_ARRAY_TASK_COUNT", "4"),
        ]);
        assert_eq!(Shard::from_env(&slurm), Ok(Shard { index: 2, count: 4 }));
        let k8s = env(&[
            ("JOB_COMPLETION_INDEX", "1"),
            ("CROSSBRIEF_SHARD_COUNT", "3"),
        ]);
        assert_eq!(Shard::from_env(&k8s), Ok(Shard { index: 1, count: 3 }));
        let unsized_job = Shard::from_env(&env(&[("JOB_COMPLETION_INDEX", "1")])).unwrap_err();
        assert!(
            unsized_job.contains("CROSSBRIEF_SHARD_COUNT"),
            "{unsized_job}"
        );
        assert!(Shard::from_env(&env(&[])).is_err());
    }
}
