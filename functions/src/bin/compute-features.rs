fn main() -> anyhow::Result<()> {
    tributary_functions::main("compute-features")
}
