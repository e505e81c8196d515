//! The subject of a DER X.509 certificate, read without an X.509 crate.

/// The parts of a certificate subject that name a Kubernetes user.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Subject {
    pub(crate) common_name: Option<String>,
    pub(crate) organizations: Vec<String>,
}

/// Reads CN and O from a DER X.509 certificate: a minimal DER walk (no crate here parses
/// X.509; the signature and validity were checked by rustls already).
pub(crate) fn cert_subject(der: &[u8]) -> Option<Subject> {
    let (cert, _) = der_sequence(der)?;
    let (mut tbs, _) = der_sequence(cert)?;
    // Optional [0] EXPLICIT version.
    if tbs.first() == Some(&0xa0) {
        tbs = der_tlv(tbs)?.2;
    }
    // serialNumber, signature, issuer, validity, then subject.
    for _ in 0..4 {
        tbs = der_tlv(tbs)?.2;
    }
    let (mut name, _) = der_sequence(tbs)?;
    let mut subject = Subject::default();
    while !name.is_empty() {
        let (tag, mut rdn, rest) = der_tlv(name)?;
        name = rest;
        if tag != 0x31 {
            return None;
        }
        while !rdn.is_empty() {
            let (atv, rest) = der_sequence(rdn)?;
            rdn = rest;
            let (oid_tag, oid, value) = der_tlv(atv)?;
            let (value_tag, value, _) = der_tlv(value)?;
            if oid_tag != 0x06 {
                return None;
            }
            let Some(text) = der_string(value_tag, value) else {
                continue;
            };
            match oid {
                [0x55, 0x04, 0x03] => subject.common_name = Some(text),
                [0x55, 0x04, 0x0a] => subject.organizations.push(text),
                _ => {}
            }
        }
    }
    Some(subject)
}

/// One DER element: (tag, contents, what follows).
fn der_tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, mut rest) = rest.split_first()?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let (bytes, after) = rest.split_at(n);
        rest = after;
        bytes
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b))
    };
    if rest.len() < len {
        return None;
    }
    let (content, after) = rest.split_at(len);
    Some((tag, content, after))
}

fn der_sequence(input: &[u8]) -> Option<(&[u8], &[u8])> {
    match der_tlv(input)? {
        (0x30, content, rest) => Some((content, rest)),
        _ => None,
    }
}

/// The directory-string types a subject uses.
fn der_string(tag: u8, value: &[u8]) -> Option<String> {
    match tag {
        // UTF8String, PrintableString, IA5String, TeletexString (treated as Latin-1 text).
        0x0c | 0x13 | 0x16 => String::from_utf8(value.to_vec()).ok(),
        0x14 => Some(value.iter().map(|b| char::from(*b)).collect()),
        // BMPString: UTF-16BE.
        0x1e => {
            let units: Vec<u16> = value
                .chunks_exact(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]))
                .collect();
            String::from_utf16(&units).ok()
        }
        _ => None,
    }
}
