fn main() -> anyhow::Result<()> {
    tributary_functions::main("quarantine-partition")
}
