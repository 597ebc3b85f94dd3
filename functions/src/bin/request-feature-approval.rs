fn main() -> anyhow::Result<()> {
    tributary_functions::main("request-feature-approval")
}
