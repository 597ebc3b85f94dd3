fn main() -> anyhow::Result<()> {
    tributary_functions::main("train-model")
}
