fn main() -> anyhow::Result<()> {
    tributary_functions::main("request-label-review")
}
