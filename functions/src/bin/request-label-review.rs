#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tributary_functions::serve("request-label-review").await
}
