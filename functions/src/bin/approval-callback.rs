fn main() -> anyhow::Result<()> {
    tributary_functions::main("approval-callback")
}
