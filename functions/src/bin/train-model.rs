#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tributary_functions::serve("train-model").await
}
