#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tributary_functions::serve("request-feature-approval").await
}
