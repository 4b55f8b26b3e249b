// examples/denseclip/svg_plot.hpp: line charts as standalone SVG files (the training curves).
//
//   denseclip::SvgPlot plot("training loss", "iteration", "loss");
//   plot.add("loss", xs, ys);  plot.add("loss_decode", xs, ys2);
//   plot.write("work/loss.svg");
//
// One axis pair, "nice" ticks (1, 2, 5 × 10^k), a legend, one colour per series. The file is
// written to "<path>.tmp" and renamed, so a viewer never sees half a chart.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include <weft/core/error.hpp>

namespace denseclip {

class SvgPlot {
public:
    SvgPlot(std::string title, std::string xlabel, std::string ylabel)
        : title_(std::move(title)), xlabel_(std::move(xlabel)), ylabel_(std::move(ylabel)) {}

    void add(std::string name, std::vector<double> x, std::vector<double> y) {
        WEFT_CHECK(x.size() == y.size(), "SvgPlot: series '", name, "' has ", x.size(), " x and ", y.size(), " y values");
        series_.push_back({std::move(name), std::move(x), std::move(y)});
    }

    std::string render() const {
        constexpr double W = 720, H = 420, L = 70, R = 160, T = 40, B = 50;  // canvas and margins
        double x0 = inf, x1 = -inf, y0 = inf, y1 = -inf;
        for (const auto& s : series_)
            for (std::size_t i = 0; i < s.x.size(); ++i) {
                if (!std::isfinite(s.y[i])) continue;
                x0 = std::min(x0, s.x[i]), x1 = std::max(x1, s.x[i]);
                y0 = std::min(y0, s.y[i]), y1 = std::max(y1, s.y[i]);
            }
        if (x0 > x1) x0 = 0, x1 = 1, y0 = 0, y1 = 1;  // nothing to draw yet
        if (x1 == x0) x1 = x0 + 1;
        if (y1 == y0) y0 -= 0.5, y1 += 0.5;
        const double ystep = nice_step((y1 - y0) / 5), xstep = nice_step((x1 - x0) / 6);
        y0 = std::floor(y0 / ystep) * ystep, y1 = std::ceil(y1 / ystep) * ystep;
        const auto px = [&](double x) { return L + (x - x0) / (x1 - x0) * (W - L - R); };
        const auto py = [&](double y) { return H - B - (y - y0) / (y1 - y0) * (H - T - B); };

        std::string s;
        char buf[256];
        const auto put = [&](const char* fmt, auto... args) {
            std::snprintf(buf, sizeof buf, fmt, args...);
            s += buf;
        };
        put("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%g\" height=\"%g\" font-family=\"sans-serif\" "
            "font-size=\"12\">\n<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n", W, H);
        put("<text x=\"%g\" y=\"24\" font-size=\"15\" text-anchor=\"middle\">", (L + W - R) / 2);
        s += escape(title_) + "</text>\n";
        for (double y = y0; y <= y1 + ystep / 2; y += ystep) {
            put("<line x1=\"%g\" y1=\"%.1f\" x2=\"%g\" y2=\"%.1f\" stroke=\"#e4e4e4\"/>\n", L, py(y), W - R, py(y));
            put("<text x=\"%g\" y=\"%.1f\" text-anchor=\"end\">%s</text>\n", L - 6, py(y) + 4, label(y, ystep).c_str());
        }
        for (double x = std::ceil(x0 / xstep) * xstep; x <= x1 + xstep / 2; x += xstep) {
            if (x > x1) break;
            put("<line x1=\"%.1f\" y1=\"%g\" x2=\"%.1f\" y2=\"%g\" stroke=\"#e4e4e4\"/>\n", px(x), T, px(x), H - B);
            put("<text x=\"%.1f\" y=\"%g\" text-anchor=\"middle\">%s</text>\n", px(x), H - B + 16, label(x, xstep).c_str());
        }
        put("<rect x=\"%g\" y=\"%g\" width=\"%g\" height=\"%g\" fill=\"none\" stroke=\"#444\"/>\n", L, T, W - L - R,
            H - T - B);
        put("<text x=\"%g\" y=\"%g\" text-anchor=\"middle\">", (L + W - R) / 2, H - 12);
        s += escape(xlabel_) + "</text>\n";
        put("<text transform=\"translate(18 %g) rotate(-90)\" text-anchor=\"middle\">", (T + H - B) / 2);
        s += escape(ylabel_) + "</text>\n";
        static const char* colours[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"};
        for (std::size_t k = 0; k < series_.size(); ++k) {
            const auto& sr = series_[k];
            const char* c = colours[k % 6];
            std::string pts;
            for (std::size_t i = 0; i < sr.x.size(); ++i) {
                if (!std::isfinite(sr.y[i])) continue;
                std::snprintf(buf, sizeof buf, "%.1f,%.1f ", px(sr.x[i]), py(sr.y[i]));
                pts += buf;
            }
            put("<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"1.6\" points=\"", c);
            s += pts + "\"/>\n";
            if (sr.x.size() <= 30)  // sparse series (evaluations): mark the measured points
                for (std::size_t i = 0; i < sr.x.size(); ++i)
                    if (std::isfinite(sr.y[i]))
                        put("<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\"/>\n", px(sr.x[i]), py(sr.y[i]), c);
            const double ly = T + 14 + 18 * double(k);
            put("<line x1=\"%g\" y1=\"%g\" x2=\"%g\" y2=\"%g\" stroke=\"%s\" stroke-width=\"3\"/>\n", W - R + 12, ly - 4,
                W - R + 32, ly - 4, c);
            put("<text x=\"%g\" y=\"%g\">", W - R + 38, ly);
            s += escape(sr.name) + "</text>\n";
        }
        return s + "</svg>\n";
    }

    void write(const std::filesystem::path& path) const {
        const auto tmp = std::filesystem::path(path.string() + ".tmp");
        {
            std::ofstream out(tmp, std::ios::binary);
            WEFT_CHECK(out.good(), "SvgPlot: cannot write '", tmp.string(), "'");
            out << render();
            WEFT_CHECK(out.good(), "SvgPlot: writing '", tmp.string(), "' failed");
        }
        std::filesystem::rename(tmp, path);
    }

private:
    struct Series {
        std::string name;
        std::vector<double> x, y;
    };
    static constexpr double inf = std::numeric_limits<double>::infinity();

    static double nice_step(double raw) {
        if (!(raw > 0)) return 1;
        const double p = std::pow(10.0, std::floor(std::log10(raw))), f = raw / p;
        return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * p;
    }
    static std::string label(double v, double step) {
        char buf[32];
        const int digits = step >= 1 ? 0 : int(std::ceil(-std::log10(step)));
        std::snprintf(buf, sizeof buf, "%.*f", digits, std::abs(v) < step * 1e-9 ? 0.0 : v);
        return buf;
    }
    static std::string escape(const std::string& in) {
        std::string out;
        for (char c : in) out += c == '<' ? "&lt;" : c == '>' ? "&gt;" : c == '&' ? "&amp;" : std::string(1, c);
        return out;
    }

    std::string title_, xlabel_, ylabel_;
    std::vector<Series> series_;
};

}  // namespace denseclip
