// The default resources are compiled in (src/resources.rs): rebuild when any of them changes.
fn main() {
    for dir in ["models", "prompts", "rules", "languages"] {
        println!("cargo:rerun-if-changed={dir}");
    }
}
