"""Everything Gradio. Nothing outside app/ imports gradio."""
