"""The app's widgets: the main window, the canvas and its items, the panels and dialogs. They
show the view-models (app.editor, app.inspector, app.autosave, ...) and call their methods."""
