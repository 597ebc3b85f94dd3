fn main() -> anyhow::Result<()> {
    tributary_functions::main("request-approval")
}
