fn main() -> anyhow::Result<()> {
    tributary_functions::main("inference-health")
}
