// The course website's own script (site/conf.py loads it on every page, after Sphinx's translations).

// Sphinx's catalogs leave some words of the search page empty in some languages (Vietnamese: "Search
// Results", the line that says the search has finished), and Sphinx then shows nothing at all: show the
// English words instead, unless site/strings.json gave the language its own (MMSITE_SEARCH_WORDS).
if (typeof Documentation !== "undefined" && Documentation.TRANSLATIONS) {
  for (const [english, translated] of Object.entries(Documentation.TRANSLATIONS)) {
    const forms = Array.isArray(translated) ? translated : [translated];
    if (forms.some((form) => !form)) delete Documentation.TRANSLATIONS[english];
  }
  Object.assign(Documentation.TRANSLATIONS, window.MMSITE_SEARCH_WORDS || {});
}

// Opened from disk (file://), a browser refuses the fetch that Sphinx's search uses for the text under each
// result: show the results without it, rather than an error in the console.
if (window.location.protocol === "file:" && typeof DOCUMENTATION_OPTIONS !== "undefined") {
  DOCUMENTATION_OPTIONS.SHOW_SEARCH_SUMMARY = false;
}
