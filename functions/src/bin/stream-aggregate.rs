fn main() -> anyhow::Result<()> {
    tributary_functions::main("stream-aggregate")
}
