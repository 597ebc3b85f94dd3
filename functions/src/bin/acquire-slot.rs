// The function this binary serves is the one of its name in
// tributary_handlers::FUNCTIONS.
fn main() -> anyhow::Result<()> {
    tributary_functions::main(env!("CARGO_BIN_NAME"))
}
