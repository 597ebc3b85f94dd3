fn main() -> anyhow::Result<()> {
    tributary_functions::main("object-created")
}
