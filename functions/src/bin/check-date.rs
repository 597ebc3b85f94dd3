fn main() -> anyhow::Result<()> {
    tributary_functions::main("check-date")
}
