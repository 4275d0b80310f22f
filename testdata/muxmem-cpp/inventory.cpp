// inventory.cpp: the C++ fixture of bench/muxmem.sh (issue 5 memory). A
// translation unit shaped like a real project's: many standard headers, a
// few hundred lines of classes and templates, and one deliberate error
// (`undeclared_total` in main) so that clangd publishes a diagnostic.
#include <algorithm>
#include <atomic>
#include <cassert>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <fstream>
#include <functional>
#include <iomanip>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <numeric>
#include <optional>
#include <queue>
#include <regex>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <tuple>
#include <type_traits>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <variant>
#include <vector>

namespace inventory {

using Clock = std::chrono::steady_clock;

// Money is a fixed-point amount in cents.
class Money {
public:
	constexpr Money() = default;
	constexpr explicit Money(std::int64_t cents) : cents_(cents) {}
	static Money fromUnits(double units) { return Money(static_cast<std::int64_t>(units * 100.0 + 0.5)); }
	constexpr std::int64_t cents() const { return cents_; }
	Money operator+(Money o) const { return Money(cents_ + o.cents_); }
	Money operator-(Money o) const { return Money(cents_ - o.cents_); }
	Money operator*(std::int64_t n) const { return Money(cents_ * n); }
	Money &operator+=(Money o) {
		cents_ += o.cents_;
		return *this;
	}
	bool operator<(Money o) const { return cents_ < o.cents_; }
	bool operator==(Money o) const { return cents_ == o.cents_; }
	std::string str() const {
		std::ostringstream os;
		os << (cents_ < 0 ? "-" : "") << std::llabs(cents_) / 100 << '.' << std::setw(2) << std::setfill('0')
		   << std::llabs(cents_) % 100;
		return os.str();
	}

private:
	std::int64_t cents_ = 0;
};

enum class Category { Tool, Part, Consumable, Service };

inline std::string_view categoryName(Category c) {
	switch (c) {
	case Category::Tool:
		return "tool";
	case Category::Part:
		return "part";
	case Category::Consumable:
		return "consumable";
	case Category::Service:
		return "service";
	}
	return "?";
}

struct Item {
	std::string sku;
	std::string name;
	Category category = Category::Part;
	Money price;
	int quantity = 0;
	std::set<std::string> tags;
	std::optional<std::string> supplier;
};

// Event is what the journal records.
struct Added {
	std::string sku;
	int quantity;
};
struct Removed {
	std::string sku;
	int quantity;
};
struct Repriced {
	std::string sku;
	Money from, to;
};
using Event = std::variant<Added, Removed, Repriced>;

template <class... Ts> struct overloaded : Ts... {
	using Ts::operator()...;
};
template <class... Ts> overloaded(Ts...) -> overloaded<Ts...>;

inline std::string describe(const Event &e) {
	return std::visit(overloaded{
				  [](const Added &a) { return "added " + std::to_string(a.quantity) + " of " + a.sku; },
				  [](const Removed &r) { return "removed " + std::to_string(r.quantity) + " of " + r.sku; },
				  [](const Repriced &p) { return "repriced " + p.sku + " " + p.from.str() + " -> " + p.to.str(); },
			  },
			  e);
}

// Observable holds subscribers that are called on every event.
template <class T> class Observable {
public:
	using Handler = std::function<void(const T &)>;
	std::size_t subscribe(Handler h) {
		std::lock_guard<std::mutex> lk(mu_);
		handlers_.emplace(++next_, std::move(h));
		return next_;
	}
	void unsubscribe(std::size_t id) {
		std::lock_guard<std::mutex> lk(mu_);
		handlers_.erase(id);
	}
	void publish(const T &v) const {
		std::vector<Handler> hs;
		{
			std::lock_guard<std::mutex> lk(mu_);
			for (const auto &[id, h] : handlers_)
				hs.push_back(h);
		}
		for (const auto &h : hs)
			h(v);
	}

private:
	mutable std::mutex mu_;
	std::map<std::size_t, Handler> handlers_;
	std::size_t next_ = 0;
};

class NotFound : public std::runtime_error {
public:
	explicit NotFound(const std::string &sku) : std::runtime_error("no item " + sku) {}
};

// Store is the inventory: items by SKU, a journal and observers.
class Store {
public:
	void add(Item item) {
		std::lock_guard<std::mutex> lk(mu_);
		auto [it, fresh] = items_.try_emplace(item.sku, item);
		if (!fresh)
			it->second.quantity += item.quantity;
		record(Added{item.sku, item.quantity});
	}
	void remove(const std::string &sku, int n) {
		std::lock_guard<std::mutex> lk(mu_);
		auto it = items_.find(sku);
		if (it == items_.end())
			throw NotFound(sku);
		it->second.quantity = std::max(0, it->second.quantity - n);
		record(Removed{sku, n});
	}
	void reprice(const std::string &sku, Money to) {
		std::lock_guard<std::mutex> lk(mu_);
		auto it = items_.find(sku);
		if (it == items_.end())
			throw NotFound(sku);
		Money from = it->second.price;
		it->second.price = to;
		record(Repriced{sku, from, to});
	}
	std::optional<Item> find(const std::string &sku) const {
		std::lock_guard<std::mutex> lk(mu_);
		auto it = items_.find(sku);
		if (it == items_.end())
			return std::nullopt;
		return it->second;
	}
	template <class Pred> std::vector<Item> select(Pred pred) const {
		std::lock_guard<std::mutex> lk(mu_);
		std::vector<Item> out;
		for (const auto &[sku, item] : items_)
			if (pred(item))
				out.push_back(item);
		std::sort(out.begin(), out.end(), [](const Item &a, const Item &b) { return a.sku < b.sku; });
		return out;
	}
	Money value() const {
		std::lock_guard<std::mutex> lk(mu_);
		return std::accumulate(items_.begin(), items_.end(), Money{},
				       [](Money m, const auto &kv) { return m + kv.second.price * kv.second.quantity; });
	}
	std::map<Category, int> countByCategory() const {
		std::lock_guard<std::mutex> lk(mu_);
		std::map<Category, int> out;
		for (const auto &kv : items_)
			out[kv.second.category] += kv.second.quantity;
		return out;
	}
	const std::deque<Event> &journal() const { return journal_; }
	Observable<Event> &events() { return events_; }

private:
	void record(Event e) {
		journal_.push_back(e);
		if (journal_.size() > 1000)
			journal_.pop_front();
		events_.publish(e);
	}
	mutable std::mutex mu_;
	std::unordered_map<std::string, Item> items_;
	std::deque<Event> journal_;
	Observable<Event> events_;
};

// Parser reads "sku,name,category,price,quantity[,tag;tag]" lines.
class Parser {
public:
	std::optional<Item> parse(const std::string &line) {
		std::smatch m;
		if (!std::regex_match(line, m, re_))
			return std::nullopt;
		Item it;
		it.sku = m[1];
		it.name = m[2];
		static const std::unordered_map<std::string, Category> cats = {
			{"tool", Category::Tool}, {"part", Category::Part}, {"consumable", Category::Consumable},
			{"service", Category::Service}};
		auto c = cats.find(m[3]);
		if (c == cats.end())
			return std::nullopt;
		it.category = c->second;
		it.price = Money::fromUnits(std::stod(m[4]));
		it.quantity = std::stoi(m[5]);
		std::string tags = m[6];
		std::istringstream ts(tags);
		for (std::string t; std::getline(ts, t, ';');)
			if (!t.empty())
				it.tags.insert(t);
		return it;
	}
	std::vector<Item> parseAll(std::istream &in, std::vector<std::string> *errors) {
		std::vector<Item> out;
		std::string line;
		for (int n = 1; std::getline(in, line); n++) {
			if (line.empty() || line[0] == '#')
				continue;
			if (auto it = parse(line))
				out.push_back(std::move(*it));
			else if (errors)
				errors->push_back("line " + std::to_string(n) + ": " + line);
		}
		return out;
	}

private:
	std::regex re_{R"(^([A-Z0-9-]+),([^,]+),(\w+),([0-9.]+),([0-9]+)(?:,(.*))?$)"};
};

// WorkQueue runs jobs on a fixed pool of threads.
class WorkQueue {
public:
	explicit WorkQueue(unsigned n) {
		for (unsigned i = 0; i < n; i++)
			threads_.emplace_back([this] { loop(); });
	}
	~WorkQueue() {
		{
			std::lock_guard<std::mutex> lk(mu_);
			stop_ = true;
		}
		cv_.notify_all();
		for (auto &t : threads_)
			t.join();
	}
	void push(std::function<void()> job) {
		{
			std::lock_guard<std::mutex> lk(mu_);
			jobs_.push(std::move(job));
		}
		cv_.notify_one();
	}
	std::size_t done() const { return done_.load(); }

private:
	void loop() {
		for (;;) {
			std::function<void()> job;
			{
				std::unique_lock<std::mutex> lk(mu_);
				cv_.wait(lk, [this] { return stop_ || !jobs_.empty(); });
				if (stop_ && jobs_.empty())
					return;
				job = std::move(jobs_.front());
				jobs_.pop();
			}
			job();
			done_++;
		}
	}
	std::vector<std::thread> threads_;
	std::queue<std::function<void()>> jobs_;
	std::mutex mu_;
	std::condition_variable cv_;
	bool stop_ = false;
	std::atomic<std::size_t> done_{0};
};

// Stats is a small running summary of a numeric series.
template <class T, class = std::enable_if_t<std::is_arithmetic_v<T>>> class Stats {
public:
	void add(T v) {
		values_.push_back(v);
		sorted_ = false;
	}
	std::optional<T> min() const { return values_.empty() ? std::nullopt : std::optional<T>(*std::min_element(values_.begin(), values_.end())); }
	std::optional<T> max() const { return values_.empty() ? std::nullopt : std::optional<T>(*std::max_element(values_.begin(), values_.end())); }
	double mean() const {
		return values_.empty() ? 0.0 : std::accumulate(values_.begin(), values_.end(), 0.0) / values_.size();
	}
	T percentile(double p) {
		assert(!values_.empty());
		if (!sorted_) {
			std::sort(values_.begin(), values_.end());
			sorted_ = true;
		}
		std::size_t i = static_cast<std::size_t>(p * (values_.size() - 1));
		return values_[i];
	}

private:
	std::vector<T> values_;
	bool sorted_ = true;
};

template <class K, class V, class F> auto mapValues(const std::map<K, V> &m, F f) {
	std::map<K, std::invoke_result_t<F, const V &>> out;
	for (const auto &[k, v] : m)
		out.emplace(k, f(v));
	return out;
}

inline std::vector<std::string> lowStock(const Store &s, int below) {
	std::vector<std::string> out;
	for (const auto &it : s.select([below](const Item &i) { return i.quantity < below; }))
		out.push_back(it.sku);
	return out;
}

inline void report(const Store &s, std::ostream &os) {
	os << "value: " << s.value().str() << "\n";
	for (const auto &[cat, n] : s.countByCategory())
		os << std::left << std::setw(12) << categoryName(cat) << n << "\n";
	std::unordered_set<std::string> seen;
	for (const auto &e : s.journal())
		seen.insert(describe(e));
	os << seen.size() << " distinct events\n";
}

} // namespace inventory

int main(int argc, char **argv) {
	using namespace inventory;
	Store store;
	std::vector<std::string> log;
	auto sub = store.events().subscribe([&log](const Event &e) { log.push_back(describe(e)); });
	Parser parser;
	std::vector<std::string> errors;
	std::istringstream demo("HAM-1,Hammer,tool,12.50,4,steel;hand\n"
				"NUT-8,Nut M8,part,0.10,500\n"
				"GLU-2,Glue,consumable,3.99,12,liquid\n"
				"bad line\n");
	std::vector<Item> items = argc > 1 ? [&] {
		std::ifstream f(argv[1]);
		return parser.parseAll(f, &errors);
	}()
					   : parser.parseAll(demo, &errors);
	WorkQueue q(2);
	for (auto &it : items)
		q.push([&store, it] { store.add(it); });
	while (q.done() < items.size())
		std::this_thread::sleep_for(std::chrono::milliseconds(1));
	store.reprice("NUT-8", Money(12));
	Stats<double> prices;
	for (const auto &it : store.select([](const Item &) { return true; }))
		prices.add(it.price.cents() / 100.0);
	auto start = Clock::now();
	report(store, std::cout);
	auto took = std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - start);
	std::cout << "mean price " << prices.mean() << ", p50 " << prices.percentile(0.5) << ", report took "
		  << took.count() << " us\n";
	auto names = mapValues(store.countByCategory(), [](int n) { return std::to_string(n) + " units"; });
	std::tuple<std::size_t, std::size_t> sizes{log.size(), errors.size()};
	std::cout << std::get<0>(sizes) << " events, " << std::get<1>(sizes) << " errors, " << names.size()
		  << " categories, low stock: " << lowStock(store, 10).size() << "\n";
	store.events().unsubscribe(sub);
	return undeclared_total;
}
