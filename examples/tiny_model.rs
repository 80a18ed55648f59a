//! Writes the tiny llama test model (`inferno::models::gguf::tiny`, about 0.5 MB) to the path given as the
//! only argument, for scripts that need a model the server can load: `scripts/bench-http.sh` runs
//! `cargo run --release --example tiny_model -- DIR/tiny.gguf`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args_os().nth(1).ok_or("usage: tiny_model PATH")?;
    let bytes = inferno::models::gguf::tiny::write_tiny_llama(std::path::Path::new(&path))?;
    println!("{} ({bytes} bytes)", std::path::Path::new(&path).display());
    Ok(())
}
