//! The batched Marian engine on the real Bergamot pt→en model (fetched by
//! scripts/ensure-models.sh): agreement with the numpy reference forward pass, batched output
//! equal to one-at-a-time output, golden translations of the Portuguese sample sentences,
//! beam search, the length limit and clear errors for corrupt files.

mod common;

use candle_core::Device;
use common::{golden, root};
use crossbrief::config::manifest::Catalog;
use crossbrief::engine::hub::Resolver;
use crossbrief::engine::marian::{MarianEngine, MarianSettings, Shortlist};
use crossbrief::engine::registry::{self, Engine};
use crossbrief::stages::clean::BoilerplateRules;

const MODEL: &str = "bergamot-pt-en-tiny";
const DEV_POR: &str = "tests/fixtures/ntrex-dev/dev.por";

fn engine(configure: impl FnOnce(&mut MarianSettings)) -> MarianEngine {
    let catalog = Catalog::load(&crossbrief::resources::Resources::embedded(), None).unwrap();
    let manifest = catalog.model(MODEL).unwrap();
    let files = Resolver::from_env(false)
        .resolve_all(manifest, false)
        .expect("the Bergamot model is not in the cache: run scripts/ensure-models.sh");
    let Engine::Translator(mut engine) = registry::build(manifest, &files, &Device::Cpu).unwrap()
    else {
        panic!("{MODEL} is a translator")
    };
    configure(&mut engine.settings);
    *engine
}

fn dev_lines() -> Vec<String> {
    std::fs::read_to_string(root().join(DEV_POR))
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

fn translate(engine: &MarianEngine, lines: &[String]) -> Vec<String> {
    let (outputs, _) = engine.translate(lines, &mut |_| {}).unwrap();
    outputs.into_iter().map(|o| o.text).collect()
}

/// `tests/fixtures/bergamot/dev.por.reference.en` is the output of
/// ../shared/reference/bergamot_tiny_reference.py (float, greedy, no shortlist) on every line
/// of dev.por; regenerate it with scripts/bergamot-reference.sh.
#[test]
fn agrees_with_the_reference_forward_pass() {
    needs_models!("agrees_with_the_reference_forward_pass", common::BERGAMOT);
    let reference: Vec<String> =
        std::fs::read_to_string(root().join("tests/fixtures/bergamot/dev.por.reference.en"))
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect();
    let lines = dev_lines();
    assert_eq!(reference.len(), lines.len());
    let ours = translate(&engine(|s| s.shortlist = false), &lines);
    let differing: Vec<usize> = (0..lines.len())
        .filter(|&i| ours[i] != reference[i])
        .collect();
    for &i in differing.iter().take(5) {
        eprintln!(
            "line {}:\n  ours:      {}\n  reference: {}",
            i + 1,
            ours[i],
            reference[i]
        );
    }
    let agreement = 1.0 - differing.len() as f64 / lines.len() as f64;
    eprintln!(
        "identical to the reference on {:.1}% of {} lines",
        100.0 * agreement,
        lines.len()
    );
    assert!(
        agreement >= 0.95,
        "only {:.1}% identical",
        100.0 * agreement
    );
}

#[test]
fn batched_output_equals_one_at_a_time() {
    needs_models!("batched_output_equals_one_at_a_time", common::BERGAMOT);
    let lines = dev_lines();
    let batched = translate(&engine(|_| {}), &lines);
    let single = translate(&engine(|s| s.batch_rows = 1), &lines);
    for (i, (b, s)) in batched.iter().zip(&single).enumerate() {
        assert_eq!(
            b,
            s,
            "line {} differs between batched and one-at-a-time",
            i + 1
        );
    }
}

#[test]
fn beam_search_batched_equals_one_at_a_time() {
    needs_models!("beam_search_batched_equals_one_at_a_time", common::BERGAMOT);
    let lines: Vec<String> = dev_lines().into_iter().take(24).collect();
    let batched = translate(&engine(|s| s.beam_size = 4), &lines);
    let single = translate(
        &engine(|s| {
            s.beam_size = 4;
            s.batch_rows = 1;
        }),
        &lines,
    );
    assert_eq!(batched, single);
    assert!(batched.iter().all(|t| !t.trim().is_empty()));
    let greedy = translate(&engine(|_| {}), &lines);
    assert!(
        batched.iter().zip(&greedy).any(|(b, g)| b != g),
        "beam search never differed from greedy decoding on 24 sentences"
    );
}

#[test]
fn portuguese_sample_sentences_match_golden() {
    needs_models!("portuguese_sample_sentences_match_golden", common::BERGAMOT);
    let catalog = Catalog::load(&crossbrief::resources::Resources::embedded(), None).unwrap();
    let rules = BoilerplateRules::load(&crossbrief::resources::Resources::embedded()).unwrap();
    let mut sentences = Vec::new();
    for entry in std::fs::read_dir(root().join("tests/fixtures/articles")).unwrap() {
        let path = entry.unwrap().path();
        let id = path.file_stem().unwrap().to_string_lossy().to_string();
        let p = crossbrief::stages::detect::prepare(&path, id, 1 << 20, &catalog, &rules).unwrap();
        if p.lang.code == "pt" {
            for paragraph in p.cleaned.title.iter().chain(&p.cleaned.paragraphs) {
                sentences.extend(crossbrief::language::sentences::sentences(paragraph));
            }
        }
    }
    sentences.sort();
    assert!(sentences.len() > 40, "{} sentences", sentences.len());
    let english = translate(&engine(|_| {}), &sentences);
    let pairs: Vec<String> = sentences
        .iter()
        .zip(&english)
        .map(|(pt, en)| format!("pt: {pt}\nen: {en}\n"))
        .collect();
    golden("bergamot_pt_sentences", &pairs.join("\n"));
}

#[test]
fn the_length_limit_is_reported() {
    needs_models!("the_length_limit_is_reported", common::BERGAMOT);
    let engine = engine(|s| {
        s.max_length_factor = 0.2;
        s.min_max_length = 3;
    });
    let (outputs, _) = engine
        .translate(&["O Banco Central Europeu manteve as taxas de juro inalteradas pela terceira reunião consecutiva.".to_string()], &mut |_| {})
        .unwrap();
    assert!(outputs[0].truncated, "{:?}", outputs[0]);
    assert!(outputs[0].target_tokens <= 4);
}

#[test]
fn corrupt_files_are_named_in_the_error() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("lex.bin");
    std::fs::write(&bad, b"not a shortlist").unwrap();
    let err = Shortlist::load(&bad)
        .err()
        .expect("garbage accepted as a shortlist")
        .to_string();
    assert!(
        err.contains("lex.bin") && err.contains("shortlist"),
        "{err}"
    );

    let model = dir.path().join("model.bin");
    std::fs::write(&model, [1u8, 0, 0, 0, 0, 0, 0, 0, 200, 0, 0, 0, 0, 0, 0, 0]).unwrap();
    let err = crossbrief::engine::marian::bergamot::load(&model, &Device::Cpu)
        .expect_err("garbage accepted as a model")
        .to_string();
    assert!(err.contains("model.bin") && err.contains("Marian"), "{err}");
}
