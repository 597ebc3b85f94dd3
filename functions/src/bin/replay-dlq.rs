fn main() -> anyhow::Result<()> {
    tributary_functions::main("replay-dlq")
}
