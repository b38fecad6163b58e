"""The Image3Ceers pipeline (alias ``calwebb_image3_ceers``)."""
