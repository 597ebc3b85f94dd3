fn main() -> anyhow::Result<()> {
    tributary_functions::main("catchup-report")
}
