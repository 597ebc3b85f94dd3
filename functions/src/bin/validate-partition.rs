fn main() -> anyhow::Result<()> {
    tributary_functions::main("validate-partition")
}
