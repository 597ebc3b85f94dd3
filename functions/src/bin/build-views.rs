fn main() -> anyhow::Result<()> {
    tributary_functions::main("build-views")
}
