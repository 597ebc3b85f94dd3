fn main() -> anyhow::Result<()> {
    tributary_functions::main("request-deploy-approval")
}
