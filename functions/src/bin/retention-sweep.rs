#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tributary_functions::serve("retention-sweep").await
}
