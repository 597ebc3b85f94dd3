fn main() -> anyhow::Result<()> {
    tributary_functions::main("retention-sweep")
}
