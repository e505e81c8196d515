//! CronJob schedules as the CronJob controller reads them (robfig/cron's standard parser): five
//! fields or a `@` descriptor. The apiserver validates with the same parser, so its error is
//! what `kubectl create cronjob` prints.

/// A CronJob schedule as the controller's parser (robfig/cron's standard parser) reads it:
/// five fields or a descriptor; the error is the parser's.
pub fn check_cron(spec: &str) -> Result<(), String> {
    let spec = spec.trim();
    if spec.starts_with("TZ=") || spec.starts_with("CRON_TZ=") {
        return Err("cannot use TZ or CRON_TZ in schedule, use timeZone field instead".into());
    }
    if spec.is_empty() {
        return Err("empty spec string".into());
    }
    if let Some(descriptor) = spec.strip_prefix('@') {
        let ok = matches!(
            descriptor,
            "yearly" | "annually" | "monthly" | "weekly" | "daily" | "midnight" | "hourly"
        ) || descriptor
            .strip_prefix("every ")
            .is_some_and(|d| !d.trim().is_empty());
        return if ok {
            Ok(())
        } else {
            Err(format!("unrecognized descriptor: {spec}"))
        };
    }
    let fields: Vec<&str> = spec.split_whitespace().collect();
    if fields.len() != 5 {
        return Err(format!(
            "expected exactly 5 fields, found {}: [{}]",
            fields.len(),
            fields.join(" ")
        ));
    }
    const MONTHS: &[&str] = &[
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ];
    const DAYS: &[&str] = &["sun", "mon", "tue", "wed", "thu", "fri", "sat"];
    let bounds: [(u32, u32, &[&str], u32); 5] = [
        (0, 59, &[], 0),
        (0, 23, &[], 0),
        (1, 31, &[], 0),
        (1, 12, MONTHS, 1),
        (0, 6, DAYS, 0),
    ];
    for (field, (min, max, names, first)) in fields.iter().zip(bounds) {
        for range in field.split(',') {
            check_cron_range(range, min, max, names, first)?;
        }
    }
    Ok(())
}

/// One range of a cron field (`*`, `5`, `1-5`, `*/10`, `mon-fri`), checked against its bounds.
fn check_cron_range(
    range: &str,
    min: u32,
    max: u32,
    names: &[&str],
    first: u32,
) -> Result<(), String> {
    let parts: Vec<&str> = range.split('/').collect();
    if parts.len() > 2 {
        return Err(format!("too many slashes: {range}"));
    }
    let number = |s: &str| -> Result<u32, String> {
        if let Some(i) = names.iter().position(|n| n.eq_ignore_ascii_case(s)) {
            return Ok(i as u32 + first);
        }
        s.parse::<u32>().map_err(|_| {
            format!("failed to parse int from {s}: strconv.Atoi: parsing \"{s}\": invalid syntax")
        })
    };
    let bounds: Vec<&str> = parts[0].split('-').collect();
    let (start, end) = match bounds.as_slice() {
        ["*" | "?"] => (min, max),
        [one] => (number(one)?, number(one)?),
        [a, b] => (number(a)?, number(b)?),
        _ => return Err(format!("too many hyphens: {range}")),
    };
    if let Some(step) = parts.get(1)
        && number(step)? == 0
    {
        return Err(format!(
            "step of range should be a positive number: {range}"
        ));
    }
    if start < min {
        return Err(format!(
            "beginning of range ({start}) below minimum ({min}): {range}"
        ));
    }
    if end > max {
        return Err(format!(
            "end of range ({end}) above maximum ({max}): {range}"
        ));
    }
    if start > end {
        return Err(format!(
            "beginning of range ({start}) beyond end of range ({end}): {range}"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cron_schedules_parse_like_the_controllers() {
        for ok in [
            "*/5 * * * *",
            "0 2 * * *",
            "0 0 1,15 * mon-fri",
            "30 6 * jan-mar SUN",
            "@hourly",
            "@every 1h30m",
            "0-59/15 0-23 1-31 1-12 0-6",
        ] {
            assert_eq!(check_cron(ok), Ok(()), "{ok}");
        }
        for (bad, why) in [
            ("", "empty spec string"),
            ("60 * * * *", "end of range (60) above maximum (59): 60"),
            ("* * 0 * *", "beginning of range (0) below minimum (1): 0"),
            (
                "5-1 * * * *",
                "beginning of range (5) beyond end of range (1): 5-1",
            ),
            (
                "*/0 * * * *",
                "step of range should be a positive number: */0",
            ),
            (
                "x * * * *",
                "failed to parse int from x: strconv.Atoi: parsing \"x\": invalid syntax",
            ),
            ("@fortnightly", "unrecognized descriptor: @fortnightly"),
            (
                "TZ=UTC 0 * * * *",
                "cannot use TZ or CRON_TZ in schedule, use timeZone field instead",
            ),
        ] {
            assert_eq!(check_cron(bad), Err(why.to_string()), "{bad}");
        }
    }
}
