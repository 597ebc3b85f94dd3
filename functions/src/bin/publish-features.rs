fn main() -> anyhow::Result<()> {
    tributary_functions::main("publish-features")
}
