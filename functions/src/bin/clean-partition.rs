fn main() -> anyhow::Result<()> {
    tributary_functions::main("clean-partition")
}
