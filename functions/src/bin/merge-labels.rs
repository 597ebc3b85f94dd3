fn main() -> anyhow::Result<()> {
    tributary_functions::main("merge-labels")
}
