fn main() -> anyhow::Result<()> {
    tributary_functions::main("plan-catchup")
}
