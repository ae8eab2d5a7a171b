"""Networks: configs, layers, the Kronos model and tokenizer, checkpoint I/O."""
