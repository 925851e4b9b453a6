"""Generated data in the real Melon and Flickr8k formats."""
