fn main() -> anyhow::Result<()> {
    tributary_functions::main("start-partition-run")
}
