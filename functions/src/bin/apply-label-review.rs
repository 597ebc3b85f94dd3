fn main() -> anyhow::Result<()> {
    tributary_functions::main("apply-label-review")
}
