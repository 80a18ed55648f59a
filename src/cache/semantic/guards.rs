//! The guards of the semantic cache: textual differences that make two similar-looking questions different
//! questions, whatever their embeddings say.
//!
//! Embedding similarity cannot tell "convert 100 F to C" from "convert 100 C to F" (cosine 0.991 with
//! MiniLM), nor "is it safe" from "is it unsafe". So two texts that differ in any of the following are never
//! a semantic match, each rule a function of its own:
//!
//! 1. [`numbers`]: the numbers they contain, in order (`1,000` = `1000`; number words up to twenty and the
//!    tens count as numbers: "two" = "2");
//! 2. [`negations`]: how many negation cues they contain (`not`, `no`, `never`, `n't`, `cannot`, `without`,
//!    ...);
//! 3. [`quoted`]: their quoted strings and code spans (`"…"`, `` `…` ``, ```` ``` ````-fenced), compared
//!    exactly;
//! 4. [`same_words_reordered`]: the same content words (stop words removed) in another order, which is how
//!    roles, directions and units get swapped ("landlord sue tenant" / "tenant sue landlord");
//! 5. [`antonym`]: a word of one and a word of the other that are antonyms, by a negating prefix
//!    (`safe`/`unsafe`, `legal`/`illegal`, `able`/`disable`) or from [`ANTONYMS`] (`enable`/`disable`,
//!    `am`/`pm`, `before`/`after`, ...).
//!
//! The rules are deliberately strict: they give up some true paraphrases (measured by `inferno cache semantic
//! calibrate`, docs/semantic-cache.md) to never serve a confident wrong answer.

use std::collections::HashSet;

/// Why two texts are not a semantic match.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mismatch {
    /// Their numbers differ (or come in another order).
    Numbers,
    /// One says "not" (or another negation cue) more often than the other.
    Negation,
    /// Their quoted strings or code spans differ.
    Quoted,
    /// The same content words in another order.
    WordOrder,
    /// A word of one is an antonym of a word of the other.
    Antonym(String, String),
}

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Mismatch::Numbers => f.write_str("different numbers"),
            Mismatch::Negation => f.write_str("different negation"),
            Mismatch::Quoted => f.write_str("different quoted text or code"),
            Mismatch::WordOrder => f.write_str("same words in another order"),
            Mismatch::Antonym(a, b) => write!(f, "antonyms {a:?} / {b:?}"),
        }
    }
}

/// Pairs of words with opposite meanings that no prefix rule catches. Both directions are checked.
pub const ANTONYMS: &[(&str, &str)] = &[
    ("above", "below"),
    ("accept", "reject"),
    ("add", "remove"),
    ("after", "before"),
    ("allow", "deny"),
    ("always", "never"),
    ("am", "pm"),
    ("ascending", "descending"),
    ("asc", "desc"),
    ("best", "worst"),
    ("better", "worse"),
    ("big", "small"),
    ("buy", "sell"),
    ("celsius", "fahrenheit"),
    ("cheap", "expensive"),
    ("cold", "hot"),
    ("compress", "decompress"),
    ("decrease", "increase"),
    ("decrypt", "encrypt"),
    ("deposit", "withdraw"),
    ("disable", "enable"),
    ("download", "upload"),
    ("east", "west"),
    ("empty", "full"),
    ("export", "import"),
    ("false", "true"),
    ("fast", "slow"),
    ("first", "last"),
    ("gain", "lose"),
    ("high", "low"),
    ("input", "output"),
    ("inside", "outside"),
    ("larger", "smaller"),
    ("largest", "smallest"),
    ("left", "right"),
    ("less", "more"),
    ("long", "short"),
    ("lower", "upper"),
    ("max", "min"),
    ("maximum", "minimum"),
    ("new", "old"),
    ("north", "south"),
    ("off", "on"),
    ("open", "close"),
    ("over", "under"),
    ("negative", "positive"),
    ("pull", "push"),
    ("start", "stop"),
    ("win", "lose"),
    ("yes", "no"),
    ("early", "late"),
    ("indoor", "outdoor"),
    ("benefit", "risk"),
    ("pro", "con"),
    ("advantage", "disadvantage"),
    ("strength", "weakness"),
];

/// Prefixes that negate the word they precede (`unsafe`, `illegal`, `disagree`, `nonzero`, `antivirus`).
const NEGATING_PREFIXES: &[&str] = &["un", "in", "im", "il", "ir", "dis", "non", "anti", "mis", "ab"];

/// Words that carry no content for [`same_words_reordered`]: articles, pronouns, auxiliaries, question
/// words, prepositions and politeness.
const STOP_WORDS: &[&str] = &[
    "a", "about", "am", "an", "and", "are", "as", "at", "be", "been", "but", "by", "can", "could", "do",
    "does", "did", "for", "from", "had", "has", "have", "how", "i", "if", "in", "into", "is", "it", "its",
    "me", "my", "of", "on", "or", "our", "please", "should", "so", "than", "that", "the", "their", "them",
    "then", "there", "these", "they", "this", "those", "to", "us", "was", "we", "were", "what", "when",
    "where", "which", "who", "whom", "whose", "why", "will", "with", "would", "you", "your",
];

/// Number words read as numbers.
const NUMBER_WORDS: &[(&str, &str)] = &[
    ("zero", "0"),
    // "one" is left out: far more often a pronoun or "one line at a time" than a count.
    ("two", "2"),
    ("three", "3"),
    ("four", "4"),
    ("five", "5"),
    ("six", "6"),
    ("seven", "7"),
    ("eight", "8"),
    ("nine", "9"),
    ("ten", "10"),
    ("eleven", "11"),
    ("twelve", "12"),
    ("thirteen", "13"),
    ("fourteen", "14"),
    ("fifteen", "15"),
    ("sixteen", "16"),
    ("seventeen", "17"),
    ("eighteen", "18"),
    ("nineteen", "19"),
    ("twenty", "20"),
    ("thirty", "30"),
    ("forty", "40"),
    ("fifty", "50"),
    ("sixty", "60"),
    ("seventy", "70"),
    ("eighty", "80"),
    ("ninety", "90"),
    ("hundred", "100"),
    ("thousand", "1000"),
    ("million", "1000000"),
    ("billion", "1000000000"),
];

/// Words that negate (after `n't` is split off a contraction).
const NEGATION_CUES: &[&str] =
    &["not", "no", "never", "none", "nobody", "nothing", "neither", "nor", "nowhere", "cannot", "without"];

/// The first rule the two texts break, or `None` when no guard stands between them.
pub fn mismatch(a: &str, b: &str) -> Option<Mismatch> {
    if numbers(a) != numbers(b) {
        return Some(Mismatch::Numbers);
    }
    if negations(a) != negations(b) {
        return Some(Mismatch::Negation);
    }
    if quoted(a) != quoted(b) {
        return Some(Mismatch::Quoted);
    }
    let singulars = |text: &str| words(text).iter().map(|w| singular(w)).collect::<Vec<_>>();
    let (words_a, words_b) = (singulars(a), singulars(b));
    if same_words_reordered(&words_a, &words_b) {
        return Some(Mismatch::WordOrder);
    }
    antonym(&words_a, &words_b).map(|(x, y)| Mismatch::Antonym(x, y))
}

/// The lowercase words of `text` (letters and digits; apostrophes kept inside a word, so `don't` is one
/// word, but a possessive `'s` dropped: `seller's` is `seller`).
pub fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !(c.is_alphanumeric() || c == '\'' || c == '’'))
        .map(|w| w.trim_matches(|c| c == '\'' || c == '’').to_lowercase().replace('’', "'"))
        .map(|w| match w.strip_suffix("'s") {
            Some(owner) => owner.to_string(),
            None => w,
        })
        .filter(|w| !w.is_empty())
        .collect()
}

/// A word reduced to its singular by the regular English plural rules and a few irregular plurals, so that
/// "cups in a liter" and "liters in a cup" compare word for word.
pub fn singular(word: &str) -> String {
    const IRREGULAR: &[(&str, &str)] = &[
        ("feet", "foot"),
        ("teeth", "tooth"),
        ("men", "man"),
        ("women", "woman"),
        ("children", "child"),
        ("people", "person"),
        ("mice", "mouse"),
        ("geese", "goose"),
    ];
    if let Some((_, one)) = IRREGULAR.iter().find(|(many, _)| *many == word) {
        return (*one).to_string();
    }
    if word.len() <= 3 || word.ends_with("ss") || word.ends_with("us") || word.ends_with("is") {
        return word.to_string();
    }
    if let Some(stem) = word.strip_suffix("ies") {
        return format!("{stem}y");
    }
    for ending in ["ches", "shes", "xes", "sses"] {
        if word.ends_with(ending) {
            return word[..word.len() - 2].to_string();
        }
    }
    word.strip_suffix('s').unwrap_or(word).to_string()
}

/// The numbers of `text` in order: digit runs (with `,` thousands separators dropped and one decimal point
/// kept) and number words, as digit strings.
pub fn numbers(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        if chars[i].is_ascii_digit() {
            let mut number = String::new();
            while i < chars.len() {
                let c = chars[i];
                let next_is_digit = chars.get(i + 1).is_some_and(char::is_ascii_digit);
                if c.is_ascii_digit() {
                    number.push(c);
                } else if c == ',' && next_is_digit {
                    // A thousands separator: dropped.
                } else if c == '.' && next_is_digit && !number.contains('.') {
                    number.push('.');
                } else {
                    break;
                }
                i += 1;
            }
            found.push(number);
        } else if chars[i].is_alphabetic() {
            let start = i;
            while i < chars.len() && chars[i].is_alphabetic() {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect::<String>().to_lowercase();
            if let Some((_, digits)) = NUMBER_WORDS.iter().find(|(name, _)| *name == word) {
                found.push((*digits).to_string());
            }
        } else {
            i += 1;
        }
    }
    found
}

/// How many negation cues `text` has: the words of [`NEGATION_CUES`] and every `n't`.
pub fn negations(text: &str) -> usize {
    words(text).iter().filter(|w| NEGATION_CUES.contains(&w.as_str()) || w.ends_with("n't")).count()
}

/// The quoted strings and code spans of `text`, in order: text between double quotes, curly quotes,
/// backticks or triple-backtick fences. Single quotes are not read (apostrophes would pair up wrongly).
pub fn quoted(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find(['"', '`', '“']) {
        let opener = &rest[start..];
        let (open, close) = if opener.starts_with("```") {
            ("```", "```")
        } else if opener.starts_with('“') {
            ("“", "”")
        } else if opener.starts_with('`') {
            ("`", "`")
        } else {
            ("\"", "\"")
        };
        let inner = &opener[open.len()..];
        match inner.find(close) {
            Some(end) => {
                found.push(inner[..end].to_string());
                rest = &inner[end + close.len()..];
            }
            None => {
                // An unclosed quote: the rest of the text is its content.
                found.push(inner.to_string());
                break;
            }
        }
    }
    found
}

/// True when both texts have the same content words (stop words and numbers dropped) as multisets, but in
/// another order — except when the only change is the first word moved to the end or the last to the front
/// (three or more words), which is how a question is rephrased ("reverse a list in Python" / "in Python,
/// reverse a list") rather than how roles, units or directions are swapped ("landlord sues tenant" / "tenant
/// sues landlord", "F to C" / "C to F", "mph to km/h" / "km/h to mph").
pub fn same_words_reordered(a: &[String], b: &[String]) -> bool {
    let content = |words: &[String]| -> Vec<String> {
        words.iter().filter(|w| !STOP_WORDS.contains(&w.as_str()) && !is_number(w)).cloned().collect()
    };
    let (a, b) = (content(a), content(b));
    if a == b {
        return false;
    }
    let (mut sorted_a, mut sorted_b) = (a.clone(), b.clone());
    sorted_a.sort();
    sorted_b.sort();
    sorted_a == sorted_b && !end_word_moved(&a, &b)
}

/// Whether `b` is `a` (three or more words) rotated by one: its last word put first, or its first put last.
fn end_word_moved(a: &[String], b: &[String]) -> bool {
    if a.len() < 3 {
        return false;
    }
    let mut left = a.to_vec();
    left.rotate_left(1);
    let mut right = a.to_vec();
    right.rotate_right(1);
    b == left.as_slice() || b == right.as_slice()
}

/// A word found only in one text whose antonym is found only in the other, by [`ANTONYMS`] or by a
/// negating prefix.
pub fn antonym(a: &[String], b: &[String]) -> Option<(String, String)> {
    let (set_a, set_b): (HashSet<&str>, HashSet<&str>) =
        (a.iter().map(String::as_str).collect(), b.iter().map(String::as_str).collect());
    let only_a: Vec<&str> = set_a.difference(&set_b).copied().collect();
    let only_b: Vec<&str> = set_b.difference(&set_a).copied().collect();
    for x in &only_a {
        for y in &only_b {
            if opposite(x, y) {
                return Some((x.to_string(), y.to_string()));
            }
        }
    }
    None
}

/// Whether `x` and `y` are antonyms: a listed pair, or one is the other with a negating prefix.
fn opposite(x: &str, y: &str) -> bool {
    let listed = ANTONYMS.iter().any(|&(p, q)| (p == x && q == y) || (p == y && q == x));
    let prefixed = |long: &str, short: &str| {
        short.len() >= 3
            && NEGATING_PREFIXES.iter().any(|prefix| {
                long.strip_prefix(prefix)
                    .is_some_and(|stem| stem == short || stem.strip_prefix('-') == Some(short))
            })
    };
    listed || prefixed(x, y) || prefixed(y, x)
}

fn is_number(word: &str) -> bool {
    word.chars().all(|c| c.is_ascii_digit()) || NUMBER_WORDS.iter().any(|(name, _)| *name == word)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plurals_and_possessives_are_reduced() {
        let reduced: Vec<String> =
            words("The seller's boxes, cities, feet and classes").iter().map(|w| singular(w)).collect();
        assert_eq!(reduced, ["the", "seller", "box", "city", "foot", "and", "class"]);
    }

    #[test]
    fn numbers_are_read_in_order_with_separators_and_words() {
        assert_eq!(numbers("convert 1,000.5 F to C, twice: two times"), ["1000.5", "2"]);
        assert_eq!(numbers("version 3.10.2"), ["3.10", "2"]);
        assert_eq!(mismatch("convert 100 F to C", "convert 100 F to C please"), None);
        assert_eq!(mismatch("2 + 3", "3 + 2"), Some(Mismatch::Numbers));
        assert_eq!(mismatch("buy two apples", "buy 2 apples"), None);
        assert_eq!(mismatch("flight at 9", "flight at 10"), Some(Mismatch::Numbers));
    }

    #[test]
    fn negation_is_counted_including_contractions() {
        assert_eq!(negations("I don't want it, not now"), 2);
        assert_eq!(mismatch("Is Python typed?", "Isn't Python typed?"), Some(Mismatch::Negation));
        assert_eq!(mismatch("apps without ads", "apps with ads"), Some(Mismatch::Negation));
        assert_eq!(mismatch("can I not eat", "can't I eat"), None, "one cue each");
    }

    #[test]
    fn quoted_strings_and_code_spans_must_match_exactly() {
        assert_eq!(quoted("say \"hi\" then `ls -la` and ```x = 1```"), ["hi", "ls -la", "x = 1"]);
        assert_eq!(mismatch("what does `ls -a` do", "what does `ls -l` do"), Some(Mismatch::Quoted));
        assert_eq!(mismatch("it's Bob's car", "it's Bob's auto"), None, "apostrophes are not quotes");
    }

    #[test]
    fn swapped_roles_units_and_directions_are_refused() {
        for (a, b) in [
            ("convert 100 F to C", "convert 100 C to F"),
            ("Can a landlord sue a tenant?", "Can a tenant sue a landlord?"),
            ("merge develop into main", "merge main into develop"),
            ("copy files from laptop to server", "copy files from server to laptop"),
            ("translate hello from English to French", "translate hello from French to English"),
        ] {
            assert_eq!(mismatch(a, b), Some(Mismatch::WordOrder), "{a} / {b}");
        }
        assert_eq!(
            mismatch("How many cups in a liter?", "How many liters in a cup?"),
            Some(Mismatch::WordOrder)
        );
        assert_eq!(
            mismatch("Does the buyer pay the seller's fees?", "Does the seller pay the buyer's fees?"),
            Some(Mismatch::WordOrder)
        );
        assert_eq!(
            mismatch("Flights from New York to Los Angeles", "Flights from Los Angeles to New York"),
            Some(Mismatch::WordOrder)
        );
        assert_eq!(mismatch("Convert 60 mph to km/h", "Convert 60 km/h to mph"), Some(Mismatch::WordOrder));
        // The last word put first: a rephrasing, not a swap.
        assert_eq!(
            mismatch("How do I reverse a list in Python?", "In Python, how can I reverse a list?"),
            None
        );
        assert_eq!(mismatch("How do I center a div in CSS?", "CSS: how to center a div?"), None);
        assert_eq!(mismatch("capital of France?", "What is the capital of France?"), None);
        assert_eq!(mismatch("What's the capital of France?", "capital city of france?"), None);
    }

    #[test]
    fn antonyms_by_prefix_and_by_list_are_refused() {
        let antonyms = |a: &str, b: &str| match mismatch(a, b) {
            Some(Mismatch::Antonym(x, y)) => (x, y),
            other => panic!("{a} / {b}: {other:?}"),
        };
        assert_eq!(
            antonyms("is it safe to eat raw eggs", "is it unsafe to eat raw eggs"),
            ("safe".into(), "unsafe".into())
        );
        assert_eq!(antonyms("is this legal", "is this illegal"), ("legal".into(), "illegal".into()));
        assert_eq!(
            antonyms("how to enable wifi", "how to disable wifi"),
            ("enable".into(), "disable".into())
        );
        assert_eq!(antonyms("meeting at 7 am", "meeting at 7 pm"), ("am".into(), "pm".into()));
        assert_eq!(
            antonyms("a nonprofit company", "a profit company"),
            ("nonprofit".into(), "profit".into())
        );
        assert_eq!(
            mismatch("run the unit test", "run it test"),
            None,
            "stems shorter than 3 letters are not read"
        );
    }
}
