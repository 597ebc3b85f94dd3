#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tributary_functions::serve("click-inference").await
}
