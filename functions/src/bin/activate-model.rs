fn main() -> anyhow::Result<()> {
    tributary_functions::main("activate-model")
}
