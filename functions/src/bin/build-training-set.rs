fn main() -> anyhow::Result<()> {
    tributary_functions::main("build-training-set")
}
