"""File names of an ``ferkeras analyze`` output folder (one place, for the writer, the report and readers)."""

#: In each video's folder.
VIDEO_FILE = "video.json"  # written last: a folder holding it is complete
FRAMES_CSV = "frames.csv"
FRAMES_PARQUET = "frames.parquet"
TRACKS_CSV = "tracks.csv"
TIMELINE_PNG = "timeline.png"
PEOPLE_DIR = "people"  # one face thumbnail per person: PEOPLE_DIR/<person>.jpg
#: In the batch folder.
SUMMARY_CSV = "summary.csv"
BATCH_JSON = "batch.json"
REPORT_HTML = "report.html"
