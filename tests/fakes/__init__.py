"""Stand-ins for outside systems: real HTTP servers on 127.0.0.1 that speak the outside system's protocol."""
