// The function this binary serves is the one of its name in
// tributary_handlers::FUNCTIONS (checked by a test); naming its handler
// here links only the code that handler reaches.
tributary_functions::lambda!(Light, inference::rollback_model);
