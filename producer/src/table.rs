//! The CLI's tables (refresh-all, check-all, the demo), in one look: no borders, a rule under the
//! header, two spaces between columns and nothing before the first, so each line still starts with
//! its first cell and a script can `grep '^healthy'` as it could before the tables had a crate.

use comfy_table::{Cell, CellAlignment, ContentArrangement, Table, TableComponent, presets};

/// A table with these column titles; the columns in `right` are right-aligned (counts).
pub fn new(header: &[&str], right: &[usize]) -> Table {
    let mut table = Table::new();
    table
        .load_preset(presets::NOTHING)
        .set_style(TableComponent::HeaderLines, '-')
        .set_style(TableComponent::MiddleHeaderIntersections, ' ')
        // Wrapping to the terminal's width would split a row over lines that no longer start with it.
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(header.iter().map(Cell::new).collect::<Vec<_>>());
    let last = header.len().saturating_sub(1);
    for (i, column) in table.column_iter_mut().enumerate() {
        column.set_padding((0, if i == last { 0 } else { 1 }));
        if right.contains(&i) {
            column.set_cell_alignment(CellAlignment::Right);
        }
    }
    table
}

/// The table's text without the padding comfy-table leaves at the ends of lines.
pub fn render(table: &Table) -> String {
    table.lines().map(|l| l.trim_end().to_owned()).collect::<Vec<_>>().join("\n")
}

/// `label  count` rows with a total, the shape of every summary the commands print.
pub fn counts<'a>(title: &str, rows: impl IntoIterator<Item = (&'a str, i64)>) -> String {
    let mut table = new(&[title, "channels"], &[1]);
    let mut total = 0;
    for (label, n) in rows {
        total += n;
        table.add_row(vec![label.to_owned(), n.to_string()]);
    }
    table.add_row(vec!["total".to_owned(), total.to_string()]);
    render(&table)
}

#[cfg(test)]
mod tests {
    #[test]
    fn lines_start_with_their_first_cell_and_counts_align_right() {
        let text = super::counts("status", [("healthy", 140), ("reauthorization_required", 20)]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 5, "{text}");
        assert!(lines[0].starts_with("status"), "{text}");
        assert!(lines[1].chars().all(|c| c == '-' || c == ' '), "{text}");
        assert!(lines[2].starts_with("healthy ") && lines[2].ends_with(" 140"), "{text}");
        assert!(lines[4].starts_with("total") && lines[4].ends_with(" 160"), "{text}");
        assert_eq!(lines[2].len(), lines[3].len(), "counts are right-aligned in one column:\n{text}");
    }
}
