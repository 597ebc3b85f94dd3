fn main() -> anyhow::Result<()> {
    tributary_functions::main("click-inference")
}
