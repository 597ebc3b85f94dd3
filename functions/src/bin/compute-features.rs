#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tributary_functions::serve("compute-features").await
}
