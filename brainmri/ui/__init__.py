"""What people see: the Gradio page, its handlers, the case report and the words in each language."""
