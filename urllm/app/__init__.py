"""The Streamlit app's package: the run reader, page helpers, views, figures, the live model."""
