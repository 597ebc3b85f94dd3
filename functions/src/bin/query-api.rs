fn main() -> anyhow::Result<()> {
    tributary_functions::main("query-api")
}
