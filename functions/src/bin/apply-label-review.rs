// The function this binary serves is the one of its name in
// tributary_handlers::FUNCTIONS (checked by a test); naming its handler
// and its ports here links only the code that handler reaches and the
// adapters of those ports.
tributary_functions::lambda!(Light, labeling::apply_label_review, OBJECTS | STATE);
