"""What an agent thinks and acts with, apart from the database: the model providers (``providers``), the tools
a PROMPT agent calls (``tools``) and the FLOW agent's scripted flows (``flows``). Plug-ins: the agents package
validates versions against them, the run path (``runs``) drives them; they import neither."""
