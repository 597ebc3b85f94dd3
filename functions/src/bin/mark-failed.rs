fn main() -> anyhow::Result<()> {
    tributary_functions::main("mark-failed")
}
