"""Step-through notebooks and the scripts that write and execute them."""
